# Store paths for the benchmarks (no nixpkgs: the host's /bin/sh, coreutils and openssl).
# Content is deterministic for a given seed (AES-CTR keystream + seq text), so the edited
# variant of `big` shares all but a few bytes with the original.
{ bigMiB ? 256, otherMiB ? 96, others ? 3, edit ? false }:
let
  mk = name: mib: seed: editIt: derivation {
    inherit name;
    system = builtins.currentSystem;
    builder = "/bin/sh";
    PATH = "/usr/bin:/bin";
    args = [ "-c" ''
      set -e
      mkdir -p $out/share/data
      half=$(( ${toString mib} * 1048576 * 3 / 5 ))
      rest=$(( ${toString mib} * 1048576 - half ))
      openssl enc -aes-256-ctr -nosalt -pbkdf2 -pass pass:${seed} -in /dev/zero 2>/dev/null | head -c $half > $out/share/data/random.bin || true
      seq 1 100000000 | head -c $rest > $out/share/data/text.tmp || true
      ${if editIt then ''
        h=$(( rest / 2 ))
        { head -c $h $out/share/data/text.tmp; printf 'a small edit made by the benchmark\n'; tail -c +$(( h + 1 )) $out/share/data/text.tmp; } > $out/share/data/text
        rm $out/share/data/text.tmp
      '' else "mv $out/share/data/text.tmp $out/share/data/text"}
      echo ${name} > $out/README
    '' ];
  };
  big = mk "loft-bench-big" bigMiB "big" edit;
  other = i: mk "loft-bench-other-${toString i}" otherMiB "other-${toString i}" false;
in { inherit big; } // builtins.listToAttrs (builtins.genList (i: { name = "other${toString i}"; value = other i; }) others)
