export * from './variants';
export * from './suite';
export * from './svg';
export * from './medians';
export * from './run-order';
