// Prisma Migrate with the JS schema engine that ships in the npm package (offline), on a
// node-postgres driver adapter. PGKEEL_PRISMA_DIR names the folder with schema.prisma and
// migrations/. Used by tests/other_runners.rs.
import path from "node:path";
import { defineConfig } from "prisma/config";
import { PrismaPg } from "@prisma/adapter-pg";
import pg from "pg";

// @prisma/adapter-pg 6.19 cannot read PostgreSQL's `name` type (prisma/orm#27403), which
// Prisma's own catalog queries return: hand it over as text.
const Query = (pg as any).Query;
const describe = Query.prototype.handleRowDescription;
Query.prototype.handleRowDescription = function (msg: any) {
  for (const field of msg.fields ?? []) if (field.dataTypeID === 19) field.dataTypeID = 25;
  return describe.call(this, msg);
};

const dir = process.env.PGKEEL_PRISMA_DIR ?? "prisma";
export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: path.resolve(dir, "schema.prisma"),
  migrations: { path: path.resolve(dir, "migrations") },
  adapter: async () => new PrismaPg({ connectionString: process.env.DATABASE_URL }),
});
