import { commandTaskFactory } from '../../src/worker/command-task.ts';

export default commandTaskFactory('freeze');
