# Exporters, all on 127.0.0.1 (only Prometheus on this host scrapes them).
{ config, lib, ... }:

let
  cfg = config.emily.monitoring;
in
{
  config = lib.mkIf cfg.enable {
    services.prometheus.exporters = {
      node = {
        enable = true;
        listenAddress = "127.0.0.1";
        enabledCollectors = [ "systemd" ];
        extraFlags = [ "--collector.textfile.directory=${cfg.textfileDir}" ];
      };
      zfs = {
        enable = config.emily.storage.enable;
        listenAddress = "127.0.0.1";
      };
      postgres = {
        enable = config.services.postgresql.enable;
        listenAddress = "127.0.0.1";
        runAsLocalSuperUser = true;
      };
      blackbox = {
        enable = true;
        listenAddress = "127.0.0.1";
        configFile = ./blackbox.yml;
      };
      nvidia-gpu = {
        enable = config.emily.gpu.enable;
        listenAddress = "127.0.0.1";
      };
    };
    systemd.tmpfiles.rules = [ "d ${cfg.textfileDir} 0755 root root -" ];

    # nixpkgs' exporter hardening sets DeviceAllow = [ "" ] (no device at all), which
    # hides the NVIDIA nodes nvidia-smi opens even with PrivateDevices off: allow exactly
    # those.
    systemd.services.prometheus-nvidia-gpu-exporter = lib.mkIf config.emily.gpu.enable {
      serviceConfig = {
        DeviceAllow = lib.mkForce [
          "/dev/nvidiactl rw"
          "/dev/nvidia0 rw"
          "/dev/nvidia-uvm rw"
        ];
        DevicePolicy = "closed";
      };
    };
  };
}
