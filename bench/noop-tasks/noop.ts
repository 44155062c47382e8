// The queue ceiling's task: does nothing, so that only graphile-worker's fetch and completion count.
export default async function noop(): Promise<void> {}
