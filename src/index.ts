// The package's public surface: the client, the command and result types, and the closed lists
// of command types and result codes.
export * from './client/index.ts';
export { commandTypes, resultCodes, resultStatuses, holdStatuses, maxInt64, taskPrefix } from './commands/contract.ts';
export type {
  CommandType,
  OperationType,
  ResultCode,
  RejectionCode,
  ResultStatus,
  HoldStatus,
} from './commands/contract.ts';
export type { Command, CommandOf, Metadata } from './commands/command.ts';
