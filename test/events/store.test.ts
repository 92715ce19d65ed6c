/** The event log and webhook store contract on every adapter setup. */
import { onEveryStore } from '../store/adapters.ts';
import { eventsStoreContract } from './store-contract.ts';

await onEveryStore('the postgres event store tests', eventsStoreContract);
