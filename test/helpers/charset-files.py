#!/usr/bin/python3
# Writes one small image per case with pydicom (which encodes text by Specific Character Set), then
# reads every file back with pydicom and prints what it decodes, as JSON.
import json, sys, os, warnings
warnings.simplefilter('ignore')
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid
out = sys.argv[1]
cases = json.loads(sys.argv[2])
extra = sys.argv[3:]
paths = []
for i, c in enumerate(cases):
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = '1.2.840.10008.5.1.4.1.1.7'
    uid = '1.2.826.0.1.3680043.10.1.%d' % (i + 1)
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.SOPClassUID = '1.2.840.10008.5.1.4.1.1.7'
    ds.SOPInstanceUID = uid
    ds.StudyInstanceUID = uid + '.1'
    ds.SeriesInstanceUID = uid + '.2'
    cs = c['charset']
    ds.SpecificCharacterSet = cs if isinstance(cs, str) else list(cs)
    if 'ISO 2022 IR 58' in ds.SpecificCharacterSet:
        # pydicom 2.3 writes GB2312 without its designation (ESC $ ) A): write the bytes as PS3.5 K.2 does.
        # Each component re-designates it: the first set is active again at '^' and '=' (PS3.5 6.1.2.5.3).
        def part(text):
            return b'\x1b$)A' + text.encode('gb2312') if any(ord(ch) > 127 for ch in text) else text.encode('ascii')
        def gb(text):
            return b'='.join(b'^'.join(part(p) for p in g.split('^')) for g in text.split('='))
        ds.add_new(0x00100010, 'PN', gb(c['name']))
        ds.add_new(0x00081030, 'LO', gb(c['description']))
        ds.add_new(0x0008103E, 'LO', gb(c['description']))
    else:
        ds.PatientName = c['name']
        ds.StudyDescription = c['description']
        ds.SeriesDescription = c['description']
    ds.Rows = 2; ds.Columns = 2; ds.BitsAllocated = 8; ds.BitsStored = 8; ds.HighBit = 7
    ds.PixelRepresentation = 0; ds.SamplesPerPixel = 1; ds.PhotometricInterpretation = 'MONOCHROME2'
    ds.PixelData = bytes([1, 2, 3, 4])
    ds.is_little_endian = True; ds.is_implicit_VR = False
    path = os.path.join(out, 'case%02d.dcm' % i)
    ds.save_as(path, write_like_original=False)
    paths.append(path)
result = []
for path in paths + extra:
    ds = pydicom.dcmread(path)
    pn = ds.PatientName
    result.append({'path': path, 'name': [str(g) for g in pn.components],
                   'description': str(ds.get('StudyDescription', '')), 'series': str(ds.get('SeriesDescription', ''))})
print(json.dumps(result, ensure_ascii=False))
