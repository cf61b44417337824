export * from './config';
export * from './errors';
export * from './logger';
export * from './grpc-server';
export * from './grpc-call';
export * from './node-flags';
