import type { InsertedMessage, NewMessage } from "../chat/ports.ts";
import type { StoredMessage } from "../chat/types.ts";
import type { ReadMark } from "./read_batch.ts";

/** Batches written at the same time, each by its own connection. */
export const WRITER_LANES = 2;

/** The lane a chat's messages and read marks are written in, always the same one. */
export const writerLaneOf = (chatId: string): number =>
  Number.parseInt(chatId.slice(0, 8), 16) % WRITER_LANES;

/** What waits in one lane of the message writer for its next batch. */
export interface Lane {
  queue: Pending[];
  /** Read marks, written in one statement before the next batch of messages. */
  reads: PendingRead[];
  writing: boolean;
}

/** A message waiting to be written, and its sender's answer. */
export interface Pending {
  message: NewMessage;
  resolve: (result: InsertedMessage) => void;
  reject: (error: unknown) => void;
  /** performance.now() after which it is not written, and its batch's statement is cancelled. */
  expiresAt: number;
}

/** A read mark waiting to be written, and its reader's answer. */
export interface PendingRead {
  mark: ReadMark;
  resolve: (result: ReadResult) => void;
  reject: (error: unknown) => void;
  expiresAt: number;
}

/** What `markRead` answers: the message and whether this mark changed it; null: unknown. */
export type ReadResult = { message: StoredMessage; changed: boolean } | null;
