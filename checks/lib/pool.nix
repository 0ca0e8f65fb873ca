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
  opt =
    flag: attrs:
    builtins.concatStringsSep " " (
      builtins.attrValues (builtins.mapAttrs (k: v: "${flag} ${k}=${v}") attrs)
    );
  rootOptions = removeAttrs layout.rootFsOptions [
    "mountpoint"
    "canmount"
  ];
  mountpointOf = n: layout.datasets.${n}.mountpoint;
  # parents mount before children: sort by mountpoint
  names = builtins.sort (a: b: mountpointOf a < mountpointOf b) (
    if only == null then builtins.attrNames layout.datasets else only
  );
  mountOf = n: if mountpointOf n == "/" then "${mountRoot}/" else "${mountRoot}${mountpointOf n}";
  create =
    name:
    "zfs create ${opt "-o" layout.datasets.${name}.options} -o mountpoint=${mountOf name} ${layout.pool}/${name}";
  disks = builtins.concatStringsSep " ";
in
''
  zpool create -f ${opt "-o" layout.poolOptions} ${opt "-O" rootOptions} \
    -O mountpoint=none -O canmount=off ${layout.pool} \
    raidz2 ${disks hdds} \
    special mirror ${disks nvmes}
  ${builtins.concatStringsSep "\n" (map create names)}
''
