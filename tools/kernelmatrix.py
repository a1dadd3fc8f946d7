"""The kernel matrix: Debian's kernel packages booted under qemu, running this tree's tests inside.

    python tools/kernelmatrix.py fetch               resolve and download the matrix's kernels
    python tools/kernelmatrix.py run [-k SERIES] -- COMMAND...
                                                     boot each kernel and run COMMAND in this tree

Each guest boots a kernel package exactly as Debian ships it (``linux-image-<series>.*-amd64-unsigned``,
the newest apt offers, resolved at run time and cached under .tmp/kernels/) with this machine's root
file system shared read-only over 9p: the guest runs the same Python, venv, libbpf, pyroute2 and test
files as the host, against its own kernel. The kernel's own modules (veth, sch_ingress, cls_bpf, ...) come
from the package's /lib/modules; the initramfs only holds busybox and the 9p modules needed to mount the
root. /run (with TMPDIR and HOME in it) and /sys/fs/bpf are the guest's own (tmpfs, bpffs); a second,
writable share is the guest's output directory (the command's exit code, its output, and whatever the
command writes to $GUEST_OUT).

The generic (not -cloud) flavour is booted because it is the one with 9p; the verifier, the BPF helpers and
the TC code are the same in both. qemu runs with TCG: nested KVM does not work on the machines this runs
on. Nothing in a guest can reach the host's network: it has no network device.
"""

import argparse
import concurrent.futures
import glob
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.path.join(ROOT, '.tmp', 'kernels')
# The kernels fleets run: Debian 12's stock kernel and its newer long-term one. Ubuntu 22.04's 5.15 and
# RHEL 9's 5.14 are not in any registry this project can reach (docs/docsite/rst/kernels.rst).
SERIES = ('6.1', '6.12')
BUSYBOX = '/bin/busybox'
# What the initramfs loads to mount the root; everything else is loaded by modprobe from the package.
ROOT_MODULES = ('virtio_pci', '9pnet_virtio', '9p')
GUEST_MEMORY_MB = 2048
# A mount option of the read-only root: metadata and pages cached in the guest (the host side does not
# change during a run), 512 KiB messages. Together they make imports over 9p several times faster.
ROOT_9P_OPTIONS = 'trans=virtio,version=9p2000.L,ro,cache=loose,msize=524288'
OUT_9P_OPTIONS = 'trans=virtio,version=9p2000.L,msize=524288'


class MatrixError(Exception):
    pass


def run(*argv, **kw):
    kw.setdefault('stdout', subprocess.PIPE)
    kw.setdefault('stderr', subprocess.PIPE)
    proc = subprocess.run(argv, text=True, check=False, **kw)
    if proc.returncode:
        raise MatrixError('%s failed (%d): %s' % (' '.join(argv), proc.returncode, proc.stderr.strip()))
    return proc.stdout


def natural_key(name):
    return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', name)]


def package_pattern(series):
    """Debian's generic kernel image of one series: linux-image-6.1.0-50-amd64-unsigned,
    linux-image-6.12.118+deb12-amd64-unsigned (not -cloud-, -rt-)."""
    return re.compile(r'^linux-image-%s\.[0-9][^ ]*?-amd64-unsigned$' % re.escape(series))


def candidates(series):
    out = run('apt-cache', 'search', '--names-only', r'^linux-image-%s\.' % re.escape(series))
    pattern = package_pattern(series)
    names = [line.split(' - ')[0] for line in out.splitlines()]
    return sorted((n for n in names if pattern.match(n) and '-cloud-' not in n and '-rt-' not in n),
                  key=natural_key)


def cached_debs(series):
    pattern = package_pattern(series)
    found = [p for p in glob.glob(os.path.join(CACHE, 'linux-image-*.deb'))
             if pattern.match(os.path.basename(p).split('_')[0])]
    return sorted(found, key=lambda p: natural_key(os.path.basename(p)))


def resolve(series):
    """The newest package of the series that apt offers (lists updated once if they know none), or,
    with apt unable to tell, the newest one cached."""
    names = candidates(series)
    if not names:
        subprocess.run(['apt-get', 'update', '-qq'], check=False)
        names = candidates(series)
    if names:
        return names[-1]
    cached = cached_debs(series)
    if cached:
        return os.path.basename(cached[-1]).split('_')[0]
    raise MatrixError('no Debian kernel package of the %s series: apt knows none and none is cached' % series)


class Kernel:
    """One kernel package, downloaded and unpacked under .tmp/kernels/<package>/."""

    def __init__(self, package):
        self.package = package
        self.dir = os.path.join(CACHE, package)
        self.release = package[len('linux-image-'):-len('-unsigned')]    # uname -r: 6.1.0-50-amd64

    @property
    def series(self):
        return '.'.join(self.release.split('.')[:2])

    @property
    def vmlinuz(self):
        return os.path.join(self.dir, 'boot', 'vmlinuz-' + self.release)

    @property
    def modules(self):
        return os.path.join(self.dir, 'lib', 'modules', self.release)

    @property
    def initrd(self):
        # named by the init script's hash: a changed script builds a new one, the unpacked package stays
        return os.path.join(self.dir, 'initrd-%s.gz' % hashlib.sha256(INIT.encode()).hexdigest()[:12])

    def fetch(self):
        """Download and unpack the package and build its initramfs, each once."""
        if not os.path.isdir(self.dir):
            self._unpack()
        if not os.path.exists(self.initrd):
            self._build_initrd()
        return self

    def _unpack(self):
        os.makedirs(CACHE, exist_ok=True)
        debs = glob.glob(os.path.join(CACHE, self.package + '_*.deb'))
        if not debs:
            # apt-get download writes to the working directory; as root it warns that _apt cannot.
            run('apt-get', 'download', '-q', self.package, cwd=CACHE)
            debs = glob.glob(os.path.join(CACHE, self.package + '_*.deb'))
        staging = tempfile.mkdtemp(prefix=self.package + '.', dir=CACHE)
        try:
            tar = subprocess.Popen(['dpkg-deb', '--fsys-tarfile', debs[0]], stdout=subprocess.PIPE)
            run('tar', '-x', '-C', staging, './boot', './lib/modules', stdin=tar.stdout)
            if tar.wait():
                raise MatrixError('dpkg-deb could not read %s' % debs[0])
            run('depmod', '-b', staging, self.release)
            os.rename(staging, self.dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _build_initrd(self):
        tree = tempfile.mkdtemp(dir=CACHE)
        try:
            for d in ('bin', 'dev', 'proc', 'sys', 'modules', 'newroot'):
                os.mkdir(os.path.join(tree, d))
            shutil.copy(BUSYBOX, os.path.join(tree, 'bin', 'busybox'))
            order = []
            for module in ROOT_MODULES:
                out = run('modprobe', '-d', self.dir, '-S', self.release, '--show-depends', module)
                for line in out.splitlines():
                    if not line.startswith('insmod '):
                        continue     # "builtin virtio_pci" on kernels that have it built in
                    path = line.split()[1]
                    name = os.path.basename(path).split('.ko')[0] + '.ko'
                    if name in order:
                        continue
                    data = open(path, 'rb').read()
                    if path.endswith('.xz'):
                        data = lzma.decompress(data)      # busybox insmod takes plain .ko files only
                    with open(os.path.join(tree, 'modules', name), 'wb') as f:
                        f.write(data)
                    order.append(name)
            init = os.path.join(tree, 'init')
            with open(init, 'w') as f:
                f.write(INIT % {'modules': ' '.join(order), 'root_opts': ROOT_9P_OPTIONS,
                                'out_opts': OUT_9P_OPTIONS})
            os.chmod(init, 0o755)
            files = run('sh', '-c', 'find . | LC_ALL=C sort', cwd=tree)
            staging = self.initrd + '.tmp'
            with open(staging, 'wb') as out:
                cpio = subprocess.Popen(['cpio', '--quiet', '-o', '-H', 'newc'], cwd=tree,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
                gz = subprocess.Popen(['gzip', '-1', '-n'], stdin=cpio.stdout, stdout=out)
                cpio.stdout.close()
                cpio.communicate(files.encode())
                if cpio.returncode or gz.wait():
                    raise MatrixError('could not build the initramfs of %s' % self.release)
            os.rename(staging, self.initrd)
        finally:
            shutil.rmtree(tree, ignore_errors=True)


# The initramfs' /init (busybox sh): the 9p modules, the host's root read-only at /newroot, then the
# command's script from the output share, run by the host's /bin/sh inside the new root.
INIT = r'''#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in %(modules)s; do insmod /modules/$m || echo "kernelmatrix: insmod $m failed"; done
mount -t 9p -o %(root_opts)s hostroot /newroot || { echo "kernelmatrix: cannot mount the root"; poweroff -f; }
# The guest's writable places are under /run (a tmpfs): /tmp stays the host's, read-only, because the
# tree under test may well live there.
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
mkdir -p /newroot/run/guest-out
mount -t 9p -o %(out_opts)s out /newroot/run/guest-out
umount /proc /sys /dev
exec switch_root /newroot /bin/sh /run/guest-out/guest.sh
'''

# What runs as PID 1 in the new root: the usual mounts, then the command in the tree, its exit code and
# output into the output share, then power off.
GUEST_SH = r'''set -u
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t bpf bpf /sys/fs/bpf
mkdir -p /dev/shm /dev/pts && mount -t tmpfs tmpfs /dev/shm
# modules the kernel asks for (veth, sch_ingress, cls_bpf, ...) come from the unpacked package
printf '#!/bin/sh\nexec /sbin/modprobe -d %(package_dir)s "$@"\n' > /run/modprobe
chmod 0755 /run/modprobe
echo /run/modprobe > /proc/sys/kernel/modprobe
ip link set lo up
mkdir -m 1777 /run/tmp && mkdir -m 0700 /run/home
export HOME=/run/home TMPDIR=/run/tmp PATH=%(path)s GUEST_OUT=/run/guest-out %(env)s
cd %(cwd)s
echo "kernelmatrix: $(uname -r) up, running the command"
( %(command)s ) > /run/guest-out/output 2>&1
echo $? > /run/guest-out/rc
sync
echo o > /proc/sysrq-trigger
sleep 10
'''


class Result:
    def __init__(self, kernel, rc, output, console, seconds, out_dir):
        self.kernel = kernel
        self.rc = rc
        self.output = output
        self.console = console
        self.seconds = seconds
        self.out_dir = out_dir

    @property
    def ok(self):
        return self.rc == 0

    def summary(self):
        """The command's last line that looks like a test summary, else its last line."""
        lines = [line.strip('= ') for line in self.output.splitlines() if line.strip()]
        counted = [line for line in lines if re.search(r'\b\d+ (passed|failed|error)', line)]
        return (counted or lines or ['no output'])[-1]

    def describe(self):
        state = 'ok' if self.ok else ('FAILED (exit %s)' % self.rc if self.rc is not None else 'FAILED (no exit code)')
        return 'kernel %s: %s, %s (%.0f s)' % (self.kernel.release, state, self.summary(), self.seconds)


def shell_quote(arg):
    return "'" + arg.replace("'", "'\\''") + "'"


def boot(kernel, command, out_dir, env=None, timeout=900, cwd=ROOT):
    """Boot ``kernel``, run ``command`` (argv) in ``cwd`` inside it, return a Result."""
    os.makedirs(out_dir, exist_ok=True)
    for name in ('rc', 'output', 'console'):
        if os.path.exists(os.path.join(out_dir, name)):
            os.unlink(os.path.join(out_dir, name))
    with open(os.path.join(out_dir, 'guest.sh'), 'w') as f:
        f.write(GUEST_SH % {
            'path': shell_quote(os.environ.get('PATH', '/usr/bin:/bin')), 'release': kernel.release,
            'package_dir': shell_quote(kernel.dir),
            'env': ' '.join('%s=%s' % (k, shell_quote(v)) for k, v in sorted((env or {}).items())),
            'cwd': shell_quote(cwd), 'command': ' '.join(shell_quote(a) for a in command)})
    console = os.path.join(out_dir, 'console')
    argv = ['qemu-system-x86_64', '-accel', 'tcg', '-cpu', 'max', '-smp', '1', '-m', str(GUEST_MEMORY_MB),
            '-nodefaults', '-display', 'none', '-no-reboot', '-serial', 'file:' + console,
            '-kernel', kernel.vmlinuz, '-initrd', kernel.initrd,
            '-append', 'console=ttyS0 quiet panic=-1 sysrq_always_enabled=1',
            '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
            '-virtfs', 'local,path=%s,mount_tag=out,security_model=none' % out_dir]
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        qemu_out = proc.communicate(timeout=timeout)[0]
    except subprocess.TimeoutExpired:
        proc.kill()
        qemu_out = proc.communicate()[0]
        qemu_out += b'\nkernelmatrix: timed out after %d s' % timeout
    seconds = time.monotonic() - start

    def read(name):
        try:
            with open(os.path.join(out_dir, name), errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''
    rc = read('rc').strip()
    console_text = read('console') + qemu_out.decode(errors='replace')
    return Result(kernel, int(rc) if rc.isdigit() else None, read('output'), console_text, seconds, out_dir)


def matrix(series=SERIES):
    return [Kernel(resolve(s)) for s in series]


def run_matrix(command, series=SERIES, env=None, timeout=900, label='run', parallel=True):
    """Boot every kernel of the matrix (in parallel: one vCPU each) and run ``command`` in each."""
    kernels = [k.fetch() for k in matrix(series)]
    out_root = os.path.join(CACHE, 'runs')
    workers = len(kernels) if parallel else 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(boot, k, command, os.path.join(out_root, '%s-%s' % (label, k.release)), env, timeout)
                   for k in kernels]
        return [f.result() for f in futures]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='verb', required=True)
    sub.add_parser('fetch', help='resolve, download and unpack the kernels')
    p_run = sub.add_parser('run', help='run a command in every kernel of the matrix')
    p_run.add_argument('-k', '--series', action='append', help='only this series (repeatable): 6.1, 6.12')
    p_run.add_argument('--timeout', type=int, default=900)
    p_run.add_argument('command', nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    try:
        if args.verb == 'fetch':
            for kernel in matrix():
                kernel.fetch()
                print('%s: %s' % (kernel.release, kernel.dir))
            return 0
        command = args.command[1:] if args.command[:1] == ['--'] else args.command
        if not command:
            parser.error('run needs a command')
        results = run_matrix(command, tuple(args.series or SERIES), timeout=args.timeout)
    except MatrixError as e:
        print('kernelmatrix: %s' % e, file=sys.stderr)
        return 2
    for result in results:
        print('---- kernel %s ----' % result.kernel.release)
        print(result.output.rstrip() or result.console[-3000:])
    for result in results:
        print(result.describe())
    return 0 if all(r.ok for r in results) else 1


if __name__ == '__main__':
    sys.exit(main())
