import { useEffect, useState, type FormEvent } from 'react';
import { useQuery } from 'urql';
import { ME, REGISTER_USER, type User } from './documents';
import { useCommand } from './live';

/**
 * Who is shopping. With a token, `me` names the user bound to its subject, if registered; in
 * open mode there is no subject, so the app remembers the user it registered.
 */
export function Account({
  user,
  onUser,
  token,
}: {
  user: User | null;
  onUser: (user: User | null) => void;
  token: string;
}) {
  const [{ data }] = useQuery({ query: ME, pause: !token });
  useEffect(() => {
    if (data?.me) onUser(data.me);
  }, [data, onUser]);

  const [register, error, busy] = useCommand(REGISTER_USER);
  const [name, setName] = useState('');
  const [email, setEmail] = useState('');
  const [age, setAge] = useState('30');

  async function submit(event: FormEvent) {
    event.preventDefault();
    const result = await register({ name, email, age: Number(age) });
    if (result) onUser({ id: result.streamId, name });
  }

  return (
    <section className="account">
      <h2>You</h2>
      {user ? (
        <p>
          Signed in as <strong data-testid="user-name">{user.name}</strong>{' '}
          <button type="button" onClick={() => onUser(null)}>
            Register someone else
          </button>
        </p>
      ) : (
        <form onSubmit={submit}>
          <label>
            Name <input required value={name} onChange={(e) => setName(e.target.value)} />
          </label>
          <label>
            Email{' '}
            <input required type="email" value={email} onChange={(e) => setEmail(e.target.value)} />
          </label>
          <label>
            Age{' '}
            <input
              required
              type="number"
              min={13}
              max={150}
              value={age}
              onChange={(e) => setAge(e.target.value)}
            />
          </label>
          <button type="submit" disabled={busy}>
            Register
          </button>
          {error && <p role="alert">{error}</p>}
        </form>
      )}
    </section>
  );
}
