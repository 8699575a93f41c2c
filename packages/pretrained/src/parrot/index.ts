export * from './load-parrot.js';
