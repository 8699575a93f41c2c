/**
 * Imported first by the package index, so that it runs before any class here extends a core class:
 * the @mllm/core this package imported must be the release it was built with (`^<this version>`).
 * Another 0.x minor (or major) throws with both versions and the command that aligns them; an older
 * patch of the same minor warns once. See `requireCoreVersion` in @mllm/core.
 */
import { requireCoreVersion } from '@mllm/core';
import { name, version } from '../package.json';

requireCoreVersion(name, version);
