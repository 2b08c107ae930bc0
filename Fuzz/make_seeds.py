#!/usr/bin/env python3
# Fuzz/make_seeds.py: small seed inputs for the fuzz targets, written without PyTorch (the pickles name
# torch's classes through stand-in modules, exactly as torch.save spells them). Seeds made here are a
# few hundred bytes, so the fuzzers mutate every part of the format quickly; the large files copied
# from ../shared show real layouts. Usage: make_seeds.py <corpus root> (writes torch_zip/, legacy/,
# safetensors/ under it).
import collections, io, json, os, pickle, struct, sys, types, zipfile

torch = types.ModuleType("torch"); utils = types.ModuleType("torch._utils")
sys.modules["torch"] = torch; sys.modules["torch._utils"] = utils

def _storage(name):
    cls = type(name, (), {}); cls.__module__ = "torch"; setattr(torch, name, cls); return cls
FloatStorage, HalfStorage, LongStorage = _storage("FloatStorage"), _storage("HalfStorage"), _storage("LongStorage")

def _rebuild_tensor_v2(*args): pass
_rebuild_tensor_v2.__module__ = "torch._utils"; utils._rebuild_tensor_v2 = _rebuild_tensor_v2

class Storage:
    def __init__(self, kind, key, data, numel): self.kind, self.key, self.data, self.numel = kind, key, data, numel

class Tensor:
    def __init__(self, storage, offset, size, stride): self.s, self.o, self.size, self.stride = storage, offset, size, stride
    def __reduce__(self):
        return (_rebuild_tensor_v2, (self.s, self.o, self.size, self.stride, False, collections.OrderedDict()))

def tensors():
    a = Storage(FloatStorage, "0", struct.pack("<6f", 1, 2, 3, 4, 5, 6), 6)
    b = Storage(HalfStorage, "1", struct.pack("<4e", 1, -2, 0.5, 8), 4)
    c = Storage(LongStorage, "2", struct.pack("<2q", 7, -9), 2)
    sd = collections.OrderedDict()
    sd["stem.weight"] = Tensor(a, 0, (2, 3), (3, 1))
    sd["stem.bias"] = Tensor(a, 2, (3,), (1,))          # a view into a shared storage
    sd["head.weight"] = Tensor(b, 0, (2, 2), (1, 2))     # transposed strides
    sd["steps"] = Tensor(c, 0, (2,), (1,))
    return sd, [a, b, c]

class ZipPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage): return ("storage", obj.kind, obj.key, "cpu", obj.numel)
        return None

class LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage): return ("storage", obj.kind, obj.key, "cpu", obj.numel, None)
        return None

def torch_zip(obj, storages):
    buf = io.BytesIO(); ZipPickler(buf, protocol=2).dump(obj)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for s in storages: z.writestr("archive/data/" + s.key, s.data)
        z.writestr("archive/version", "3\n")
    return out.getvalue()

def legacy(obj, storages):
    out = io.BytesIO()
    for value in (0x1950a86a20f9469cfc6c, 1001,
                  {"protocol_version": 1001, "little_endian": True, "type_sizes": {"short": 2, "int": 4, "long": 4}}):
        pickle.dump(value, out, protocol=2)
    LegacyPickler(out, protocol=2).dump(obj)
    pickle.dump([s.key for s in storages], out, protocol=2)
    for s in storages: out.write(struct.pack("<q", s.numel)); out.write(s.data)
    return out.getvalue()

def safetensors():
    data = struct.pack("<6f", 1, 2, 3, 4, 5, 6) + struct.pack("<2e", 1, 2)
    header = {"__metadata__": {"format": "pt"},
              "a": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
              "b": {"dtype": "F16", "shape": [2], "data_offsets": [24, 28]}}
    h = json.dumps(header).encode(); h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data

def main(root):
    sd, storages = tensors()
    seeds = {
        "torch_zip/small.pth": torch_zip(sd, storages),
        "torch_zip/nested.pth": torch_zip({"model": sd, "epoch": 3, "args": ["x", 1.5, None, True]}, storages),
        "legacy/small.pth": legacy(sd, storages),
        "legacy/nested.pth": legacy({"state_dict": sd, "epoch": 3}, storages),
        "safetensors/small.safetensors": safetensors(),
    }
    for name, data in seeds.items():
        path = os.path.join(root, name); os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f: f.write(data)

if __name__ == "__main__":
    main(sys.argv[1])
