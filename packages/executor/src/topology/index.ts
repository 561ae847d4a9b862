export * from './ranks';
export * from './boundary';
