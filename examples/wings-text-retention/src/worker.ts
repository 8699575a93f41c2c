/** Worker-thread entry: runs the tasks posted by the main thread (see @mllm-example/common's pool). */
import { serveTasks } from '@mllm-example/common';
import { runTask, type Task, type TaskContext } from './tasks.js';
import type { StepReport } from './recipe.js';

serveTasks<Task, StepReport, Awaited<ReturnType<typeof runTask>>>((task, report, data) =>
  runTask(task, { ...(data as Omit<TaskContext, 'onStep'>), onStep: (_task, step) => report(step) }),
);
