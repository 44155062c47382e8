import { commandTask } from '../../src/worker/command-task.ts';

export default commandTask('unfreeze');
