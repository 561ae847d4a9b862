export type { Plan } from '@mist/core';
export type { ShardKind } from '../model';
