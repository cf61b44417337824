export * from './lab';
export * from './nats';
export * from './processes';
