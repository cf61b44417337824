export * from './wait-for';
export * from './temp-dir';
export * from './nats';
