import { useState, type FormEvent } from 'react';
import { useQuery, useSubscription } from 'urql';
import {
  CREATE_ORDER,
  ORDER,
  ORDER_CHANGED,
  PAY_ORDER,
  PLACE_ORDER,
  type Address,
  type Order,
  type User,
} from './documents';
import { describe, dollars, newest, useCommand, useReloadAfterReconnect } from './live';

type OrderRef = { id: string; position: string };

const SAMPLE_ADDRESS: Address = {
  line1: '1 Main St',
  city: 'Springfield',
  postalCode: '12345',
  country: 'US',
};

/** The shopper's order: created, filled from the products list, placed, and then watched. */
export function OrderPanel({
  user,
  order,
  onOrder,
}: {
  user: User | null;
  order: OrderRef | null;
  onOrder: (order: OrderRef | null) => void;
}) {
  return (
    <section className="order">
      <h2>Your order</h2>
      {!user ? (
        <p className="note">Register to order.</p>
      ) : order ? (
        <PlacedOrder order={order} onOrder={onOrder} />
      ) : (
        <NewOrder user={user} onOrder={onOrder} />
      )}
    </section>
  );
}

function NewOrder({ user, onOrder }: { user: User; onOrder: (order: OrderRef) => void }) {
  const [address, setAddress] = useState(SAMPLE_ADDRESS);
  const [create, error, busy] = useCommand(CREATE_ORDER);

  async function submit(event: FormEvent) {
    event.preventDefault();
    const result = await create({ customerId: user.id, shippingAddress: address });
    if (result) onOrder({ id: result.streamId, position: result.position });
  }

  const field = (key: keyof Address, label: string) => (
    <label>
      {label}{' '}
      <input
        required
        value={address[key]}
        onChange={(e) => setAddress({ ...address, [key]: e.target.value })}
      />
    </label>
  );
  return (
    <form onSubmit={submit}>
      {field('line1', 'Street')}
      {field('city', 'City')}
      {field('postalCode', 'Postal code')}
      {field('country', 'Country')}
      <button type="submit" disabled={busy}>
        Create order
      </button>
      {error && <p role="alert">{error}</p>}
    </form>
  );
}

/**
 * The order as the query last read it (at `minPosition`: the position of the shopper's last
 * command, so their own writes show at once) or as `orderChanged` last pushed it, whichever is
 * newer. Placing returns at PLACED; the fulfilment process then reserves the stock and the
 * order turns CONFIRMED or REJECTED, which arrives here without asking.
 */
function PlacedOrder({
  order,
  onOrder,
}: {
  order: OrderRef;
  onOrder: (order: OrderRef | null) => void;
}) {
  const [queried, reload] = useQuery({
    query: ORDER,
    variables: { id: order.id, minPosition: order.position },
  });
  const [live] = useSubscription(
    { query: ORDER_CHANGED, variables: { orderId: order.id } },
    (seen: Order[] = [], data) => [...seen, data.orderChanged],
  );
  useReloadAfterReconnect(() => reload({ requestPolicy: 'network-only' }));
  const current = newest(queried.data?.order, ...(live.data ?? []));
  const statusesSeenLive = (live.data ?? [])
    .map((pushed) => pushed.status)
    .filter((status, i, all) => status !== all[i - 1]);

  const [place, placeError, placing] = useCommand(PLACE_ORDER);
  const [pay, payError, paying] = useCommand(PAY_ORDER);
  async function placeOrder() {
    const result = await place({ orderId: order.id });
    if (result) onOrder({ ...order, position: result.position });
  }
  async function payOrder(amount: number) {
    const result = await pay({ orderId: order.id, amount, method: 'card' });
    if (result) onOrder({ ...order, position: result.position });
  }

  if (!current) {
    return queried.error ? <p role="alert">{describe(queried.error)}</p> : <p>Loading…</p>;
  }
  return (
    <div>
      <p>
        Status: <output data-testid="order-status">{current.status}</output>
        {current.rejectionReason && <span className="reason"> ({current.rejectionReason})</span>}
      </p>
      {statusesSeenLive.length > 0 && (
        <p className="timeline">
          Seen live: <span data-testid="order-timeline">{statusesSeenLive.join(' → ')}</span>
        </p>
      )}
      {live.error && <p role="alert">Not live: {describe(live.error)}</p>}
      <ul data-testid="order-items">
        {current.items.map((item) => (
          <li key={item.productId}>
            {item.quantity} × {item.name} ({item.sku}): {dollars(item.lineTotal)}
          </li>
        ))}
      </ul>
      <p>
        Total: <output data-testid="order-total">{dollars(current.total)}</output>
      </p>
      {current.status === 'DRAFT' && (
        <button type="button" disabled={placing || current.items.length === 0} onClick={placeOrder}>
          Place order
        </button>
      )}
      {current.status === 'CONFIRMED' && (
        <button type="button" disabled={paying} onClick={() => payOrder(current.total)}>
          Pay {dollars(current.total)}
        </button>
      )}
      {current.status !== 'DRAFT' && (
        <button type="button" onClick={() => onOrder(null)}>
          Start a new order
        </button>
      )}
      {(placeError || payError) && <p role="alert">{placeError ?? payError}</p>}
    </div>
  );
}
