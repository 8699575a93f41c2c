/** Instruction templates for the two synthetic discriminative tasks. */

export const SYNTHETIC_TASKS = ['what-changed', 'which-differs'] as const;
export type SyntheticTask = (typeof SYNTHETIC_TASKS)[number];

const WHAT_CHANGED = [
  'What changed between image 1 and image 2?',
  'Describe the difference between the images.',
  'How does image 2 differ from image 1?',
];

const WHICH_DIFFERS = [
  'Which image differs from the others, and how?',
  'One of these images is different. Which one, and what is different?',
];

/** Number words for image indices in answers. */
function imageLabel(index: number): string {
  return `Image ${index + 1}`;
}

/** "Image 1: <image>\nImage 2: <image>\n" for `n` images. */
export function imageLines(n: number, placeholder: string): string {
  return Array.from({ length: n }, (_, i) => `${imageLabel(i)}: ${placeholder}\n`).join('');
}

/** Prompt and answer of a what-changed sample (image 1 original, image 2 edited). */
export function whatChangedText(description: string, variant: number, placeholder: string): { prompt: string; answer: string } {
  return { prompt: imageLines(2, placeholder) + WHAT_CHANGED[variant % WHAT_CHANGED.length], answer: description };
}

/** Prompt and answer of a which-differs sample; `odd` is the edited image's index. */
export function whichDiffersText(
  description: string,
  numImages: number,
  odd: number,
  variant: number,
  placeholder: string,
): { prompt: string; answer: string } {
  return {
    prompt: imageLines(numImages, placeholder) + WHICH_DIFFERS[variant % WHICH_DIFFERS.length],
    answer: `${imageLabel(odd)}. ${description}`,
  };
}

export const TEMPLATE_COUNTS = { 'what-changed': WHAT_CHANGED.length, 'which-differs': WHICH_DIFFERS.length } as const;
