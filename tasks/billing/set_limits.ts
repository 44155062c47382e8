import { commandTask } from '../../src/worker/command-task.ts';

export default commandTask('set_limits');
