/** Worker-thread entry: runs the seed tasks posted by the main thread (see @mllm-example/common's pool). */
import { serveTasks } from '@mllm-example/common';
import { runSeed, type SeedProgress, type SeedResult, type SeedTask } from './seed-task.js';

serveTasks<SeedTask, SeedProgress, SeedResult>((task, report) => runSeed(task, report));
