// The one error type of the verification core. `code` is stable and meant
// for programs (tests, the UI's choice of wording); `message` is a short
// sentence meant for people; `data` carries what a caller may want to show
// (e.g. who did sign a note no pinned key signed).

export class VerifyError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {Record<string, unknown>} [data]
   */
  constructor(code, message, data) {
    super(message);
    this.name = 'VerifyError';
    this.code = code;
    this.data = data ?? {};
  }
}
