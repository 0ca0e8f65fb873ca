# The systemd sandbox every Emily service unit shares. Each unit merges it under its own
# serviceConfig (`serviceConfig = hardening // { ... }`) and adds what differs: device
# access (PrivateDevices, DevicePolicy, DeviceAllow, ProtectClock for the GPU), user,
# state directory and start command.
{
  NoNewPrivileges = true;
  ProtectSystem = "strict";
  ProtectHome = true;
  PrivateTmp = true;
  ProtectKernelTunables = true;
  ProtectKernelModules = true;
  ProtectKernelLogs = true;
  ProtectControlGroups = true;
  ProtectHostname = true;
  RestrictSUIDSGID = true;
  RestrictRealtime = true;
  RestrictNamespaces = true;
  LockPersonality = true;
  RemoveIPC = true;
  CapabilityBoundingSet = "";
  AmbientCapabilities = "";
  RestrictAddressFamilies = [
    "AF_UNIX"
    "AF_INET"
    "AF_INET6"
  ];
  SystemCallArchitectures = "native";
  SystemCallFilter = [
    "@system-service"
    "~@privileged"
  ];
}
