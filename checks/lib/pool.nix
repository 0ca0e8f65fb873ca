# Shell commands that build the `ember` pool on a VM's virtual disks exactly as
# modules/storage/layout.nix declares it (hosts/cloudlab/disko.nix does the same on the
# real disks): raidz2 over `hdds`, a mirrored special vdev over `nvmes`, every dataset
# with its properties. `mountRoot`: where datasets mount ("" = their real mountpoints).
{
  hdds,
  nvmes,
  mountRoot ? "/ember",
  only ? null,
}:

let
  layout = import ../../modules/storage/layout.nix;
  opt = flag: attrs: builtins.concatStringsSep " " (
    builtins.attrValues (builtins.mapAttrs (k: v: "${flag} ${k}=${v}") attrs)
  );
  # parents mount before children: sort by mountpoint
  names = builtins.sort (a: b: layout.datasets.${a}.mountpoint < layout.datasets.${b}.mountpoint) (
    if only == null then builtins.attrNames layout.datasets else only
  );
  mountOf = d: if d.mountpoint == "/" then "${mountRoot}/" else "${mountRoot}${d.mountpoint}";
  create =
    name:
    let
      d = layout.datasets.${name};
    in
    "zfs create ${opt "-o" d.options} -o mountpoint=${mountOf d} ${layout.pool}/${name}";
in
''
  zpool create -f ${opt "-o" layout.poolOptions} ${
    opt "-O" (
      removeAttrs layout.rootFsOptions [
        "mountpoint"
        "canmount"
      ]
    )
  } -O mountpoint=none -O canmount=off ${layout.pool} \
    raidz2 ${builtins.concatStringsSep " " hdds} \
    special mirror ${builtins.concatStringsSep " " nvmes}
  ${builtins.concatStringsSep "\n" (map create names)}
''
