import { useState, type FormEvent } from 'react';

/** The optional bearer token. Locally the service runs in open mode and needs none; with
 * CHRONICLE_JWT_SECRET set, paste one from `chronicle token --sub ada --role user`. */
export function TokenField({
  token,
  onChange,
}: {
  token: string;
  onChange: (token: string) => void;
}) {
  const [draft, setDraft] = useState(token);
  function submit(event: FormEvent) {
    event.preventDefault();
    onChange(draft.trim());
  }
  return (
    <form className="token" onSubmit={submit}>
      <label>
        Token (optional)
        <input
          type="password"
          value={draft}
          placeholder="open mode: none needed"
          autoComplete="off"
          onChange={(event) => setDraft(event.target.value)}
        />
      </label>
      <button type="submit">Use token</button>
    </form>
  );
}
