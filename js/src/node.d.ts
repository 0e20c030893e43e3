export * from './index.js';
import type { Engine, Seq2SeqDecoder, Variant } from './index.js';
/** Load a bundle folder: sizes and sha256 checked with node:crypto; onnxruntime-node unless `engine` is given. */
export function loadBundleFromDir(dir: string, options?: { variant?: Variant; threads?: number; engine?: Engine; oneCall?: boolean | 'auto' }): Promise<Seq2SeqDecoder>;
export function folderReader(dir: string): (name: string, maxBytes: number) => Promise<Uint8Array>;
export function nodeSha256(bytes: Uint8Array): Promise<string>;
