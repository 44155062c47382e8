export { createBillingClient } from './client.ts';
export type { BillingClient, BillingClientOptions, CallOptions, HistoryOptions, ResultsOptions } from './client.ts';
export { ClientClosedError, ResultTimeoutError } from './errors.ts';
export type * from './types.ts';
