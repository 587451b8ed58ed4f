import { Kysely, PostgresDialect, SqliteDialect } from 'kysely';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import type { Database } from './schema.ts';

export type DialectKind = 'sqlite' | 'postgres';

export interface DatabaseConfig {
  /** `sqlite:PATH` / a plain file path, or `postgresql://…`. */
  url: string;
  /** PostgreSQL pool size. */
  poolSize?: number;
  /** PostgreSQL statement_timeout in ms (0 = none). */
  statementTimeoutMs?: number;
}

export interface Db {
  kysely: Kysely<Database>;
  kind: DialectKind;
  close(): Promise<void>;
}

// BIGINT columns hold byte counts and millisecond timestamps, all far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export function dialectKindOf(url: string): DialectKind {
  return /^postgres(ql)?:\/\//.test(url) ? 'postgres' : 'sqlite';
}

export function openDatabase(cfg: DatabaseConfig): Db {
  const kind = dialectKindOf(cfg.url);
  if (kind === 'postgres') {
    const pool = new pg.Pool({
      connectionString: cfg.url,
      max: cfg.poolSize ?? 10,
      connectionTimeoutMillis: 5000,
      statement_timeout: cfg.statementTimeoutMs || undefined,
    });
    // An idle client losing its connection (database restart) must not crash the process.
    pool.on('error', () => {});
    const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return { kysely, kind, close: () => kysely.destroy() };
  }
  const file = cfg.url.replace(/^sqlite:(\/\/)?/, '');
  const sqlite = new SQLite(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database: sqlite }) });
  return { kysely, kind, close: () => kysely.destroy() };
}
