/** Thrown by `migrate()` when the database schema is newer than this code understands. */
export class SchemaTooNewError extends Error {
  constructor(found: number, known: number) {
    super(
      `the database schema is version ${found}, but this Postbote knows only up to ${known}: ` +
        'it was written by a newer Postbote; upgrade this node instead of downgrading the data',
    );
    this.name = 'SchemaTooNewError';
  }
}
