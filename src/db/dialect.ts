import { closeSync, mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import { Kysely, PostgresDialect, SqliteDialect, type SqliteDatabase } from 'kysely';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { PRIVATE_DIR, PRIVATE_FILE } from '../storage/modes.ts';
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
  /** PostgreSQL pool connections (SQLite has one connection and no pool). */
  poolStats?(): { total: number; idle: number; waiting: number };
  close(): Promise<void>;
}

// BIGINT columns hold byte counts and millisecond timestamps, all far below 2^53.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));

export function dialectKindOf(url: string): DialectKind {
  return /^postgres(ql)?:\/\//.test(url) ? 'postgres' : 'sqlite';
}

/** Past statement_timeout, the server had its chance to cancel the query itself. */
const QUERY_DEADLINE_MARGIN_MS = 1000;

/**
 * statement_timeout is enforced by the server, so it cannot end a query the server never answers
 * (host frozen, network cut, failover in progress). Past the deadline the connection is ended:
 * the query fails with "Connection terminated" (answered 503) and the pool replaces the connection.
 */
function endHungQueries(client: pg.PoolClient, deadlineMs: number): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  client.query = ((...args: unknown[]) => {
    const result = query(...args);
    // Kysely only uses the promise form; callback and submittable forms pass through.
    if (!(result instanceof Promise)) return result;
    const timer = setTimeout(() => void client.end().catch(() => {}), deadlineMs);
    return result.finally(() => clearTimeout(timer));
  }) as typeof client.query;
}

export function openDatabase(cfg: DatabaseConfig): Db {
  const kind = dialectKindOf(cfg.url);
  if (kind === 'postgres') {
    const pool = new pg.Pool({
      connectionString: cfg.url,
      max: cfg.poolSize ?? 10,
      connectionTimeoutMillis: 5000,
      statement_timeout: cfg.statementTimeoutMs || undefined,
      // Idle pooled connections otherwise die silently in NATs and firewalls (AWS NAT: 350 s idle).
      keepAlive: true,
    });
    // A client losing its connection (database restart) must not crash the process: an idle one is
    // dropped by the pool; a checked-out one (a transaction waiting on storage) fails its next query,
    // and that error is answered.
    pool.on('error', () => {});
    pool.on('connect', (client) => client.on('error', () => {}));
    if (cfg.statementTimeoutMs) {
      const deadlineMs = cfg.statementTimeoutMs + QUERY_DEADLINE_MARGIN_MS;
      pool.on('connect', (client) => endHungQueries(client, deadlineMs));
    }
    const kysely = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    const poolStats = () => ({ total: pool.totalCount, idle: pool.idleCount, waiting: pool.waitingCount });
    return { kysely, kind, poolStats, close: () => kysely.destroy() };
  }
  const file = cfg.url.replace(/^sqlite:(\/\/)?/, '');
  if (file !== ':memory:') createPrivately(file);
  const sqlite = new SQLite(file);
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma('synchronous = NORMAL');
  sqlite.pragma('foreign_keys = ON');
  sqlite.pragma('busy_timeout = 5000');
  const kysely = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
  return { kysely, kind, close: () => kysely.destroy() };
}

/**
 * The database holds signing keys: its folder is created 0700 and the file 0600 before SQLite
 * opens it (SQLite gives its -wal and -shm files the database file's mode).
 */
function createPrivately(file: string): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: PRIVATE_DIR });
  closeSync(openSync(file, 'a', PRIVATE_FILE));
}

const STATEMENT_CACHE_SIZE = 500;

/**
 * Kysely prepares every SQLite query anew, and preparing cost about a fifth
 * of a narinfo lookup; statements are reused by SQL text instead (bounded:
 * IN lists of varying length make many texts).
 */
function withStatementCache(db: SQLite.Database): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => db.close(),
    prepare(sql: string) {
      let stmt = cache.get(sql);
      if (!stmt) {
        stmt = db.prepare(sql);
        if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
        cache.set(sql, stmt);
      }
      return stmt;
    },
  };
}
