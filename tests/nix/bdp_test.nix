let
  bdp = import ../../modules/lib/bdp.nix;
  mib = 1024 * 1024;
in
[
  {
    name = "1 Gbit/s at 100 ms: BDP 12.5 MB";
    expr = bdp.bdpBytes 1000 100;
    expected = 12500000;
  }
  {
    name = "1 Gbit/s at 100 ms: 16 MiB buffers, not 128 MiB";
    expr = bdp.bufferBytes 1000 100;
    expected = 16 * mib;
  }
  {
    name = "10 Gbit/s at 100 ms: 128 MiB";
    expr = bdp.bufferBytes 10000 100;
    expected = 128 * mib;
  }
  {
    name = "an exact power of two is kept (2^24 B = 16777216)";
    expr = bdp.nextPow2 16777216;
    expected = 16777216;
  }
  {
    name = "a LAN (1 Gbit/s at 1 ms) is floored at 4 MiB";
    expr = bdp.bufferBytes 1000 1;
    expected = 4 * mib;
  }
  {
    name = "sysctls for 1 Gbit/s at 100 ms";
    expr = bdp.sysctls 1000 100;
    expected = {
      "net.core.rmem_max" = 16777216;
      "net.core.wmem_max" = 16777216;
      "net.ipv4.tcp_rmem" = "4096 131072 16777216";
      "net.ipv4.tcp_wmem" = "4096 16384 16777216";
    };
  }
  {
    name = "the maxima are integers and the triples strings (nixpkgs' sysctl types)";
    expr = builtins.mapAttrs (_: builtins.typeOf) (bdp.sysctls 1000 100);
    expected = {
      "net.core.rmem_max" = "int";
      "net.core.wmem_max" = "int";
      "net.ipv4.tcp_rmem" = "string";
      "net.ipv4.tcp_wmem" = "string";
    };
  }
  {
    name = "a zero RTT is rejected";
    expr = (builtins.tryEval (bdp.bdpBytes 1000 0)).success;
    expected = false;
  }
]
