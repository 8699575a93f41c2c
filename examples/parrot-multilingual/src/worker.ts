/** Worker-thread entry: runs the tasks posted by the main thread (see @mllm-example/common's pool). */
import { serveTasks } from '@mllm-example/common';
import { runTask, type Outcome, type Task, type TaskContext } from './tasks.js';
import type { StepReport } from './recipe.js';

serveTasks<Task, { stage: string; report: StepReport }, Outcome | null>((task, report, data) =>
  runTask(task, { ...(data as Omit<TaskContext, 'onStep'>), onStep: (_task, stage, step) => report({ stage, report: step }) }),
);
