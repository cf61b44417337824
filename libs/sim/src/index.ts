export * from './trace';
export * from './simulator';
export * from './presets';
