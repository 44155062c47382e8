// The package's public surface: the client, the command and result types, and the closed lists
// of command types and result codes.
export * from './client/index.ts';
export {
  resultCodes,
  resultStatuses,
  holdStatuses,
  accountStatuses,
  maxInt64,
  taskPrefix,
} from './commands/contract.ts';
export { commandTypes } from './commands/command.ts';
export type { AccountBalance, ResultCode, RejectionCode, ResultStatus, HoldStatus } from './commands/contract.ts';
export type { Command, CommandOf, CommandType, Metadata, OperationType } from './commands/command.ts';
