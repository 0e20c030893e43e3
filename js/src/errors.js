// Errors the runtime raises on purpose: each is a user error (a bundle, an input, an engine) and its message says
// what went wrong and what to do. The classes mirror the Python runtime's (runtime/errors.py).

/** Base class of every error this package raises on purpose. */
export class Seq2SeqEdgeError extends Error {
  constructor(message) {
    super(message);
    this.name = new.target.name;
  }
}

/** Text that cannot be encoded: symbols the model never saw, too long, not valid Unicode, not a string. */
export class InputTextError extends Seq2SeqEdgeError {}

/** A bundle or manifest that is missing, malformed, tampered with, or contradicts its model files. */
export class BundleError extends Seq2SeqEdgeError {
  /** @param {string|string[]} problems @param {string} [where] the file or URL */
  constructor(problems, where) {
    const list = typeof problems === 'string' ? [problems] : [...problems];
    const head = where ? `${where}: ` : '';
    super(list.length === 1 ? head + list[0] : `${head}${list.length} problems: ${list.join('; ')}`);
    this.problems = list;
    this.where = where ?? null;
  }
}

/** The engine cannot run here, or cannot run this model variant (the message names what does). */
export class EngineError extends Seq2SeqEdgeError {}

/** A bad argument to the API (a batch size below 1, a maxOutputLen above the trained maximum ...). */
export class OptionError extends Seq2SeqEdgeError {}
