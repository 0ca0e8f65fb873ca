# pg_hba.conf of the Emily database as pure data (builtins only), validated by a real
# Postgres in tests/host/test_database_settings.py. Local clients: peer (unix user =
# role). TCP: scram, from the services VLAN only (servicesCidr, null without the
# network module), and from localhost only if localhostTcp.
{
  dbName,
  servicesCidr,
  localhostTcp,
}:

''
  local all all peer
''
+ (
  if localhostTcp then
    ''
      host all all 127.0.0.1/32 scram-sha-256
      host all all ::1/128 scram-sha-256
    ''
  else
    ""
)
+ (if servicesCidr == null then "" else "host ${dbName} ${dbName} ${servicesCidr} scram-sha-256\n")
