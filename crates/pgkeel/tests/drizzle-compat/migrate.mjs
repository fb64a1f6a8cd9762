// Runs drizzle-orm's own migrator, as an application would:
//   node migrate.mjs <databaseUrl> <migrationsFolder> [migrationsSchema] [migrationsTable]
// Exit 0 when drizzle's migrate() resolves; 1 with the error on stderr otherwise; 2 on bad usage.
import pg from "pg";
import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";

const [url, migrationsFolder, migrationsSchema, migrationsTable] = process.argv.slice(2);
if (!url || !migrationsFolder) {
  console.error("usage: node migrate.mjs <databaseUrl> <migrationsFolder> [migrationsSchema] [migrationsTable]");
  process.exit(2);
}

const client = new pg.Client({ connectionString: url });
let code = 0;
try {
  await client.connect();
  const db = drizzle({ client });
  const config = { migrationsFolder };
  if (migrationsSchema) config.migrationsSchema = migrationsSchema;
  if (migrationsTable) config.migrationsTable = migrationsTable;
  await migrate(db, config);
} catch (err) {
  console.error(`drizzle migrate failed: ${err?.stack ?? err}`);
  if (err?.cause) console.error(`cause: ${err.cause?.message ?? err.cause}`);
  code = 1;
} finally {
  await client.end().catch(() => {});
}
process.exit(code);
