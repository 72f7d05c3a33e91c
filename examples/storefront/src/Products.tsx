import { useState } from 'react';
import { useQuery, useSubscription } from 'urql';
import { ADD_LINE_ITEM, PRODUCT_EVENTS, PRODUCTS, type Product } from './documents';
import { describe, dollars, useCommand, useReloadAfterReconnect } from './live';

/**
 * The catalog with live stock. Each catalog event (a restock, a reservation by the fulfilment
 * process, a new product) arrives on the `events` subscription; its position becomes the
 * products query's `minPosition`, so the query answers once the read model has applied that
 * event: the page never shows stock older than the event that announced the change.
 *
 * The log is private: `events` needs a token in a secured service, and a user's token sees
 * only the user's own streams, not the catalog's. There the list is as of its last load.
 */
export function Products({
  order,
  onOrderPosition,
}: {
  order: { id: string } | null;
  onOrderPosition: (position: string) => void;
}) {
  const [live] = useSubscription({ query: PRODUCT_EVENTS });
  const minPosition = live.data?.events.position;
  const [products, reload] = useQuery({ query: PRODUCTS, variables: { minPosition } });
  useReloadAfterReconnect(() => reload({ requestPolicy: 'network-only' }));

  return (
    <section className="products">
      <h2>Products</h2>
      {live.error && (
        <p className="note">
          Stock is not live: {describe(live.error)}.{' '}
          <button type="button" onClick={() => reload({ requestPolicy: 'network-only' })}>
            Reload
          </button>
        </p>
      )}
      {products.error && <p role="alert">{describe(products.error)}</p>}
      <table>
        <thead>
          <tr>
            <th>Product</th>
            <th>SKU</th>
            <th>Price</th>
            <th title="on hand less reserved">Available</th>
            <th>On hand</th>
            <th>Reserved</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {products.data?.products.edges.map(({ node }) => (
            <ProductRow
              key={node.id}
              product={node}
              order={order}
              onOrderPosition={onOrderPosition}
            />
          ))}
        </tbody>
      </table>
    </section>
  );
}

function ProductRow({
  product,
  order,
  onOrderPosition,
}: {
  product: Product;
  order: { id: string } | null;
  onOrderPosition: (position: string) => void;
}) {
  const [quantity, setQuantity] = useState('1');
  const [add, error, busy] = useCommand(ADD_LINE_ITEM);

  async function addToOrder() {
    if (!order) return;
    const result = await add({
      orderId: order.id,
      productId: product.id,
      quantity: Number(quantity),
    });
    if (result) onOrderPosition(result.position);
  }

  return (
    <tr data-sku={product.sku}>
      <td>{product.name}</td>
      <td>{product.sku}</td>
      <td>{dollars(product.priceCents)}</td>
      <td data-testid="available">{product.stockAvailable}</td>
      <td data-testid="on-hand">{product.stockOnHand}</td>
      <td data-testid="reserved">{product.stockReserved}</td>
      <td>
        <input
          type="number"
          min={1}
          aria-label={`Quantity of ${product.sku}`}
          value={quantity}
          onChange={(e) => setQuantity(e.target.value)}
        />
        <button type="button" disabled={!order || busy} onClick={addToOrder}>
          Add to order
        </button>
        {error && <span role="alert">{error}</span>}
      </td>
    </tr>
  );
}
