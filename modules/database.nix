# PostgreSQL for the memory service (tier L3): pgvector and pg_partman, tuned for 128 GiB
# of RAM on raidz2 HDDs with an NVMe special vdev. The schema is NOT here: the memory
# service applies python/src/emily/memory/migrations/*.sql itself.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  cfg = config.emily.database;
  net = config.emily.network;
  servicesVlan = if net.enable then "${net.vlans.services.prefix}.0/24" else null;
  # oneshot units that run psql once the server and its ensure* setup are up
  afterPostgres = {
    after = [
      "postgresql.service"
      "postgresql-setup.service"
    ];
    requires = [
      "postgresql.service"
      "postgresql-setup.service"
    ];
    wantedBy = [ "multi-user.target" ];
    path = [ config.services.postgresql.finalPackage ];
  };
in
{
  options.emily.database = {
    enable = lib.mkEnableOption "PostgreSQL with pgvector and pg_partman";

    package = lib.mkPackageOption pkgs "postgresql_17" { };

    name = lib.mkOption {
      type = lib.types.str;
      default = "emily";
      description = "Database and role of the memory service (the role owns the database).";
    };

    ramGiB = lib.mkOption {
      type = lib.types.ints.positive;
      default = config.emily.storage.ramGiB;
      defaultText = lib.literalExpression "config.emily.storage.ramGiB";
      description = "RAM (GiB) the memory settings are sized from (128 on the host).";
    };

    localhostTcp = lib.mkOption {
      type = lib.types.bool;
      default = false;
      description = ''
        Also accept TCP (scram) from localhost. Off: local clients use the unix socket
        with peer authentication (the memory service does), and TCP is accepted only
        from the services VLAN.
      '';
    };

    passwordFile = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      description = "File with the role's password, for scram over TCP (sops: modules/secrets.nix).";
    };
  };

  config = lib.mkIf cfg.enable {
    services.postgresql = {
      enable = true;
      inherit (cfg) package;
      extensions = ps: [
        ps.pgvector
        ps.pg_partman
      ];
      ensureDatabases = [ cfg.name ];
      ensureUsers = [
        {
          inherit (cfg) name;
          ensureDBOwnership = true;
        }
      ];
      authentication = lib.mkForce (
        import ./database/hba.nix {
          dbName = cfg.name;
          servicesCidr = servicesVlan;
          inherit (cfg) localhostTcp;
        }
      );
      settings =
        import ./database/settings.nix {
          inherit (cfg) ramGiB;
          dbName = cfg.name;
        }
        // {
          listen_addresses = lib.mkForce (
            lib.concatStringsSep "," (
              lib.optional cfg.localhostTcp "127.0.0.1"
              ++ lib.optional net.enable "${net.vlans.services.prefix}.1"
            )
          );
        };
    };

    # Postgres binds the services VLAN address: start once it exists, restart on failure
    systemd.services.postgresql = lib.mkIf net.enable {
      after = [ net.addressUnits.services ];
      wants = [ net.addressUnits.services ];
      serviceConfig.Restart = lib.mkDefault "on-failure";
    };

    # Extensions that need a superuser, created once in the service's database.
    systemd.services.emily-postgres-setup = afterPostgres // {
      description = "Create pgvector and pg_partman in the Emily database";
      serviceConfig = {
        Type = "oneshot";
        User = "postgres";
        RemainAfterExit = true;
        ExecStart = "${lib.getExe' config.services.postgresql.finalPackage "psql"} -v ON_ERROR_STOP=1 -d ${cfg.name} -f ${./database/extensions.sql}";
      };
    };

    # The role's password (scram) from a file; re-run when the secret rotates.
    systemd.services.emily-postgres-passwords = lib.mkIf (cfg.passwordFile != null) (
      afterPostgres
      // {
        description = "Set the Emily role's Postgres password from its secret file";
        serviceConfig = {
          Type = "oneshot";
          User = "postgres";
          RemainAfterExit = true;
        };
        # psql reads the file itself (\set with backticks), so the password appears on
        # no command line; :'pw' quotes it as a literal.
        script = ''
          psql -v ON_ERROR_STOP=1 -d postgres <<'SQL'
          \set pw `cat ${lib.escapeShellArg cfg.passwordFile}`
          ALTER ROLE "${cfg.name}" PASSWORD :'pw';
          SQL
        '';
      }
    );
  };
}
