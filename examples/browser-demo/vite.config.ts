import { defineConfig } from 'vite';
import { defaultCheckpointDir, demoViteConfig } from './vite.demo-config.js';

export default defineConfig(demoViteConfig({ checkpointDir: defaultCheckpointDir() }));
