export * from './policy';
export * from './classifier';
export * from './precopy';
export * from './compaction';
