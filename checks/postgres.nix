# VM test of modules/database.nix: Postgres with pgvector and pg_partman, the Emily
# database owned by its role (ensureDBOwnership), peer auth, and the memory service's
# own migrations (python/src/emily/memory/migrations/*.sql, not duplicated here)
# applied in order as that role, then an HNSW index and a k-NN query.
{ pkgs }:

let
  migrations = ../python/src/emily/memory/migrations;
in
pkgs.testers.runNixOSTest {
  name = "emily-postgres";

  nodes.machine = {
    imports = [ ../modules ];
    virtualisation.memorySize = 2048;
    emily.database = {
      enable = true;
      ramGiB = 2;
    };
    # the unix user the memory service runs as; peer auth maps it to the role
    users.users.emily = {
      isSystemUser = true;
      group = "emily";
    };
    users.groups.emily = { };
  };

  testScript = ''
    machine.wait_for_unit("postgresql.service")
    machine.wait_for_unit("emily-postgres-setup.service")

    def as_emily(sql):
        return machine.succeed(f"sudo -u emily psql -v ON_ERROR_STOP=1 -tA -d emily -c \"{sql}\"").strip()

    with subtest("extensions and ownership"):
        exts = machine.succeed("sudo -u postgres psql -tA -d emily -c 'select extname from pg_extension'").split()
        assert "vector" in exts and "pg_partman" in exts, exts
        owner = machine.succeed("sudo -u postgres psql -tA -c \"select pg_get_userbyid(datdba) from pg_database where datname = 'emily'\"").strip()
        assert owner == "emily", owner

    with subtest("settings"):
        for name, want in [("password_encryption", "scram-sha-256"), ("full_page_writes", "off"), ("wal_compression", "zstd")]:
            got = as_emily(f"show {name}")
            assert got == want, f"{name}: {got}"

    with subtest("the memory service's migrations apply in order"):
        machine.succeed("for f in $(ls ${migrations}/*.sql | sort); do sudo -u emily psql -v ON_ERROR_STOP=1 -d emily -f $f; done")
        # and again: they are idempotent
        machine.succeed("for f in $(ls ${migrations}/*.sql | sort); do sudo -u emily psql -v ON_ERROR_STOP=1 -d emily -f $f; done")

    with subtest("pgvector: CREATE EXTENSION, HNSW index, k-NN"):
        as_emily("CREATE TABLE probe (id int primary key, v vector(3))")
        as_emily("INSERT INTO probe SELECT i, ARRAY[i, i * 2, i * 3]::vector FROM generate_series(1, 500) i")
        as_emily("CREATE INDEX ON probe USING hnsw (v vector_l2_ops) WITH (m = 16, ef_construction = 64)")
        nearest = as_emily("SET enable_seqscan = off; SELECT id FROM probe ORDER BY v <-> '[10,20,30]' LIMIT 1")
        assert nearest.splitlines()[-1] == "10", nearest

    with subtest("no TCP from localhost: local clients use the socket (peer)"):
        machine.fail("sudo -u emily psql -h 127.0.0.1 -d emily -w -c 'select 1'")
        hba = machine.succeed("sudo -u postgres psql -tA -c 'select type, address from pg_hba_file_rules'")
        assert "127.0.0.1" not in hba, hba
  '';
}
