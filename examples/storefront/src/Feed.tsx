import { useState, type FormEvent } from 'react';
import { useQuery, useSubscription } from 'urql';
import {
  ADD_COMMENT,
  CREATE_POST,
  LIKE_POST,
  POST,
  POST_CHANGED,
  POST_EVENTS,
  POSTS,
  UNLIKE_POST,
  type Post,
  type User,
} from './documents';
import { describe, newest, useCommand, useReloadAfterReconnect } from './live';

/**
 * The feed: the newest posts, read again at the position of each post created or deleted
 * (the `events` subscription), and each post kept fresh by its own `postChanged`
 * subscription, which pushes the post's read model on every like, comment or edit. All of
 * them share the one websocket.
 */
export function Feed({ user }: { user: User | null }) {
  const [events] = useSubscription({ query: POST_EVENTS });
  const [ownPosition, setOwnPosition] = useState<string>();
  // Our own new post is read at its position even where `events` is not open to us.
  const minPosition = latest(events.data?.events.position, ownPosition);
  const [posts, reload] = useQuery({ query: POSTS, variables: { minPosition } });
  useReloadAfterReconnect(() => reload({ requestPolicy: 'network-only' }));

  return (
    <section className="feed">
      <h2>Feed</h2>
      {user ? (
        <NewPost user={user} onPosted={setOwnPosition} />
      ) : (
        <p className="note">Register to post.</p>
      )}
      {events.error && (
        <p className="note">
          New posts are not live: {describe(events.error)}.{' '}
          <button type="button" onClick={() => reload({ requestPolicy: 'network-only' })}>
            Reload
          </button>
        </p>
      )}
      {posts.error && <p role="alert">{describe(posts.error)}</p>}
      {posts.data?.posts.edges.map(({ node }) => (
        <PostCard key={node.id} post={node} user={user} />
      ))}
    </section>
  );
}

/** The later of two positions (decimal strings: they may pass 2^53, so compared as BigInt). */
function latest(a: string | undefined, b: string | undefined): string | undefined {
  if (a === undefined || b === undefined) return a ?? b;
  return BigInt(a) >= BigInt(b) ? a : b;
}

function NewPost({ user, onPosted }: { user: User; onPosted: (position: string) => void }) {
  const [message, setMessage] = useState('');
  const [create, error, busy] = useCommand(CREATE_POST);
  async function submit(event: FormEvent) {
    event.preventDefault();
    const result = await create({ authorId: user.id, message });
    if (result) {
      setMessage('');
      onPosted(result.position);
    }
  }
  return (
    <form onSubmit={submit}>
      <label>
        New post <input required value={message} onChange={(e) => setMessage(e.target.value)} />
      </label>
      <button type="submit" disabled={busy}>
        Post
      </button>
      {error && <p role="alert">{error}</p>}
    </form>
  );
}

/** One post: as listed, as `postChanged` last pushed it, or as read after our own like or
 * comment (at its position, so it shows even before the push), whichever is newest. */
function PostCard({ post: listed, user }: { post: Post; user: User | null }) {
  const [live] = useSubscription({ query: POST_CHANGED, variables: { postId: listed.id } });
  const [ownWrite, setOwnWrite] = useState<string>();
  const [reread] = useQuery({
    query: POST,
    variables: { id: listed.id, minPosition: ownWrite },
    pause: ownWrite === undefined,
  });
  const post = newest(listed, live.data?.postChanged, reread.data?.post) ?? listed;
  const liked = user !== null && post.likedBy.includes(user.id);

  const [like, likeError] = useCommand(LIKE_POST);
  const [unlike, unlikeError] = useCommand(UNLIKE_POST);
  const [comment, commentError, commenting] = useCommand(ADD_COMMENT);
  const [text, setText] = useState('');

  async function toggleLike(userId: string) {
    const result = await (liked ? unlike : like)({ postId: post.id, userId });
    if (result) setOwnWrite(result.position);
  }
  async function submitComment(event: FormEvent) {
    event.preventDefault();
    if (!user) return;
    const result = await comment({ postId: post.id, authorId: user.id, text });
    if (result) {
      setText('');
      setOwnWrite(result.position);
    }
  }

  return (
    <article className="post" data-post-id={post.id}>
      <p className="message">{post.message}</p>
      <p className="byline">
        by {post.author?.name ?? 'someone'} ·{' '}
        <span data-testid="like-count">{post.likeCount}</span>{' '}
        {post.likeCount === 1 ? 'like' : 'likes'}{' '}
        {user && (
          <button type="button" onClick={() => toggleLike(user.id)}>
            {liked ? 'Unlike' : 'Like'}
          </button>
        )}
      </p>
      <ul className="comments" data-testid="comments">
        {post.comments.map((c) => (
          <li key={c.id}>
            <strong>{c.author?.name ?? 'someone'}:</strong> {c.text}
          </li>
        ))}
      </ul>
      {user && (
        <form onSubmit={submitComment}>
          <input
            required
            aria-label="Comment"
            placeholder="Comment"
            value={text}
            onChange={(e) => setText(e.target.value)}
          />
          <button type="submit" disabled={commenting}>
            Comment
          </button>
        </form>
      )}
      {(likeError || unlikeError || commentError || live.error) && (
        <p role="alert">{likeError ?? unlikeError ?? commentError ?? describe(live.error)}</p>
      )}
    </article>
  );
}
