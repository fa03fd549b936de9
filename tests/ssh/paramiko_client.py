"""Paramiko as an SSH client of sshfsd, for tests/ssh/*.sh.

Usage: paramiko_client.py PORT COMMAND [ARGS]
  none USER                 print the methods the server lists after "none"
  password USER             try a password; print the outcome
  interactive USER          try keyboard-interactive; print the outcome
  rsa-sha1 USER KEYFILE     try an RSA key with ssh-rsa (SHA-1) signatures
  transfer USER KEYFILE SRC DST
                            log in with KEYFILE, upload SRC as /DST, read
                            it back and print its SHA-256
Every outcome is printed as one line; the exit status is 0 when the
command ran, whatever the server answered.
"""
import hashlib
import socket
import sys

import paramiko


def connect(port, **kwargs):
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    transport = paramiko.Transport(sock, **kwargs)
    transport.start_client(timeout=30)
    return transport


def try_auth(transport, attempt):
    try:
        attempt()
    except paramiko.BadAuthenticationType as e:
        print("rejected; allowed: " + ",".join(e.allowed_types))
        return
    except paramiko.AuthenticationException:
        print("rejected")
        return
    except paramiko.SSHException as e:
        print("error: %s" % e)
        return
    print("accepted" if transport.is_authenticated() else "rejected")


def main():
    port = int(sys.argv[1])
    command = sys.argv[2]
    user = sys.argv[3]
    if command == "rsa-sha1":
        # Paramiko follows server-sig-algs and would not sign with ssh-rsa
        # at all: force the algorithm, as an old client would use it.
        paramiko.auth_handler.AuthHandler._finalize_pubkey_algorithm = (
            lambda self, key_type: "ssh-rsa")
        key = paramiko.RSAKey.from_private_key_file(sys.argv[4])
        transport = connect(port)
        try_auth(transport, lambda: transport.auth_publickey(user, key))
    elif command == "none":
        transport = connect(port)
        try_auth(transport, lambda: transport.auth_none(user))
    elif command == "password":
        transport = connect(port)
        try_auth(transport, lambda: transport.auth_password(user, "secret"))
    elif command == "interactive":
        transport = connect(port)
        def answer(title, instructions, prompts):
            return ["secret"] * len(prompts)
        try_auth(transport,
                 lambda: transport.auth_interactive(user, answer))
    elif command == "transfer":
        key = paramiko.Ed25519Key.from_private_key_file(sys.argv[4])
        transport = connect(port)
        transport.auth_publickey(user, key)
        sftp = paramiko.SFTPClient.from_transport(transport)
        sftp.put(sys.argv[5], "/" + sys.argv[6])
        digest = hashlib.sha256()
        with sftp.open("/" + sys.argv[6], "rb") as f:
            f.prefetch()
            digest.update(f.read())
        print(digest.hexdigest())
        sftp.close()
    else:
        print("unknown command " + command)
        return 2
    transport.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
