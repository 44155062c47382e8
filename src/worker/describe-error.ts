/**
 * An error as a log field: message, name and codes, never the objects node-pg hangs on it (a whole
 * client with its secretKey and connection parameters, a pool, a socket).
 */
export function describeError(error: unknown): { message: string; type?: string; code?: string } {
  if (!(error instanceof Error)) return { message: String(error) };
  const code = (error as { code?: unknown }).code;
  return { message: error.message, type: error.name, ...(typeof code === 'string' ? { code } : {}) };
}
