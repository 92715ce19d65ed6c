/** The statistics store contract on every adapter setup: SQLite in-process, on its thread, through a port, PostgreSQL. */
import { onEveryStore } from '../store/adapters.ts';
import { statsStoreContract } from './store-contract.ts';

await onEveryStore('the postgres statistics store tests', statsStoreContract);
