/**
 * Every GraphQL document the app sends, with the TypeScript shapes of their answers (written by
 * hand to stay small; a larger app would generate them from api/schema.graphql with
 * graphql-codegen). Keeping them in one file also makes the trusted-documents manifest easy:
 * `chronicle documents hash` takes .graphql files of exactly these texts.
 */
import { gql, type TypedDocumentNode } from 'urql';

/** What every command mutation returns: pass `position` as `minPosition` to read your write. */
export interface CommandResult {
  streamId: string;
  version: number;
  position: string;
}

export type OrderStatus =
  | 'DRAFT'
  | 'PLACED'
  | 'CONFIRMED'
  | 'REJECTED'
  | 'PAID'
  | 'SHIPPED'
  | 'DELIVERED'
  | 'CANCELLED';

export interface Product {
  id: string;
  sku: string;
  name: string;
  priceCents: number;
  stockOnHand: number;
  stockReserved: number;
  stockAvailable: number;
  version: number;
}

export interface Order {
  id: string;
  status: OrderStatus;
  items: { productId: string; sku: string; name: string; quantity: number; lineTotal: number }[];
  total: number;
  rejectionReason: string | null;
  version: number;
}

export interface Post {
  id: string;
  message: string;
  likeCount: number;
  likedBy: string[];
  comments: { id: string; text: string; author: { name: string } | null }[];
  author: { name: string } | null;
  version: number;
}

export interface User {
  id: string;
  name: string;
}

const PRODUCT_FIELDS = gql`
  fragment ProductFields on Product {
    id sku name priceCents stockOnHand stockReserved stockAvailable version
  }
`;
const ORDER_FIELDS = gql`
  fragment OrderFields on Order {
    id status total rejectionReason version
    items { productId sku name quantity lineTotal }
  }
`;
const POST_FIELDS = gql`
  fragment PostFields on Post {
    id message likeCount likedBy version
    author { name }
    comments { id text author { name } }
  }
`;

export const ME = gql<{ me: User | null }>`
  query Me { me { id name } }
`;

export const PRODUCTS = gql<
  { products: { edges: { node: Product }[] } },
  { minPosition?: string }
>`
  query Products($minPosition: Position) {
    products(first: 50, minPosition: $minPosition) { edges { node { ...ProductFields } } }
  }
  ${PRODUCT_FIELDS}
`;

/** Every event of the catalog, live: each one is the cue to read the products again. */
export const PRODUCT_EVENTS = gql<{ events: { position: string; type: string } }>`
  subscription ProductEvents { events(streamType: "Product") { position type } }
`;

export const ORDER = gql<{ order: Order | null }, { id: string; minPosition?: string }>`
  query Order($id: ID!, $minPosition: Position) {
    order(id: $id, minPosition: $minPosition) { ...OrderFields }
  }
  ${ORDER_FIELDS}
`;

export const ORDER_CHANGED = gql<{ orderChanged: Order }, { orderId: string }>`
  subscription OrderChanged($orderId: ID!) { orderChanged(orderId: $orderId) { ...OrderFields } }
  ${ORDER_FIELDS}
`;

export const POSTS = gql<{ posts: { edges: { node: Post }[] } }, { minPosition?: string }>`
  query Posts($minPosition: Position) {
    posts(first: 20, minPosition: $minPosition) { edges { node { ...PostFields } } }
  }
  ${POST_FIELDS}
`;

export const POST = gql<{ post: Post | null }, { id: string; minPosition?: string }>`
  query Post($id: ID!, $minPosition: Position) {
    post(id: $id, minPosition: $minPosition) { ...PostFields }
  }
  ${POST_FIELDS}
`;

/** New and deleted posts; a post's likes and comments come by postChanged, below. */
export const POST_EVENTS = gql<{ events: { position: string; type: string } }>`
  subscription PostEvents {
    events(streamType: "Post", types: ["PostCreated", "PostDeleted"]) { position type }
  }
`;

export const POST_CHANGED = gql<{ postChanged: Post }, { postId: string }>`
  subscription PostChanged($postId: ID!) { postChanged(postId: $postId) { ...PostFields } }
  ${POST_FIELDS}
`;

/** A command mutation: one input, a CommandResult under the mutation's name. */
type Mutation<Name extends string, Input> = TypedDocumentNode<
  Record<Name, CommandResult>,
  { input: Input }
>;

export const REGISTER_USER: Mutation<
  'registerUser',
  { email: string; name: string; age: number }
> = gql`
  mutation RegisterUser($input: RegisterUserInput!) {
    registerUser(input: $input) { streamId version position }
  }
`;

export interface Address {
  line1: string;
  city: string;
  postalCode: string;
  country: string;
}

export const CREATE_ORDER: Mutation<
  'createOrder',
  { customerId: string; shippingAddress: Address }
> = gql`
  mutation CreateOrder($input: CreateOrderInput!) {
    createOrder(input: $input) { streamId version position }
  }
`;

export const ADD_LINE_ITEM: Mutation<
  'addLineItem',
  { orderId: string; productId: string; quantity: number }
> = gql`
  mutation AddLineItem($input: AddLineItemInput!) {
    addLineItem(input: $input) { streamId version position }
  }
`;

export const PLACE_ORDER: Mutation<'placeOrder', { orderId: string }> = gql`
  mutation PlaceOrder($input: PlaceOrderInput!) {
    placeOrder(input: $input) { streamId version position }
  }
`;

export const PAY_ORDER: Mutation<
  'payOrderAmount',
  { orderId: string; amount: number; method: string }
> = gql`
  mutation PayOrder($input: PayOrderAmountInput!) {
    payOrderAmount(input: $input) { streamId version position }
  }
`;

export const CREATE_POST: Mutation<'createPost', { authorId: string; message: string }> = gql`
  mutation CreatePost($input: CreatePostInput!) {
    createPost(input: $input) { streamId version position }
  }
`;

export const LIKE_POST: Mutation<'likePost', { postId: string; userId: string }> = gql`
  mutation LikePost($input: LikePostInput!) {
    likePost(input: $input) { streamId version position }
  }
`;

export const UNLIKE_POST: Mutation<'unlikePost', { postId: string; userId: string }> = gql`
  mutation UnlikePost($input: UnlikePostInput!) {
    unlikePost(input: $input) { streamId version position }
  }
`;

export const ADD_COMMENT: Mutation<
  'addComment',
  { postId: string; authorId: string; text: string }
> = gql`
  mutation AddComment($input: AddCommentInput!) {
    addComment(input: $input) { streamId version position }
  }
`;
