/** Test-only: assert that a call fails with a `SafetensorsError` of a given code (and message). */
import { expect } from 'vitest';
import { SafetensorsError, type SafetensorsErrorCode } from './safetensors.js';

function checkError(caught: unknown, code: SafetensorsErrorCode, message?: RegExp): SafetensorsError {
  expect(caught, `expected ${code}`).toBeInstanceOf(SafetensorsError);
  const error = caught as SafetensorsError;
  expect(error.code, error.message).toBe(code);
  if (message) expect(error.message).toMatch(message);
  return error;
}

/** `fn()` throws a `SafetensorsError` with `code` (message matching `message`); returns it. */
export function expectError(fn: () => unknown, code: SafetensorsErrorCode, message?: RegExp): SafetensorsError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  return checkError(caught, code, message);
}

/** `promise` rejects with a `SafetensorsError` with `code` (message matching `message`); returns it. */
export async function expectRejects(promise: Promise<unknown>, code: SafetensorsErrorCode, message?: RegExp): Promise<SafetensorsError> {
  let caught: unknown;
  try {
    await promise;
  } catch (error) {
    caught = error;
  }
  return checkError(caught, code, message);
}
