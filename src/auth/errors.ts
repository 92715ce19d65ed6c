/** A problem with what an operator asked for (bad name, unknown account, duplicate). */
export class AuthInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthInputError';
  }
}
