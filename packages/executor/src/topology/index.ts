export * from './ranks';
export * from './boundary';
export * from './expert-groups';
