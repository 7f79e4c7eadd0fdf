// Moves tuning-record entries in and out of the schema's tables with the code
// flatc generates; no rule on their values is applied here.
#include "delegate/lr/lr_schema.h"

namespace cocopie {

std::vector<uint8_t> PackTuningRecord(const std::vector<RawTuningEntry>& raw) {
  flatbuffers::FlatBufferBuilder builder(64 + 64 * raw.size());
  std::vector<flatbuffers::Offset<fbs::TuningEntry>> tables;
  tables.reserve(raw.size());
  for (const RawTuningEntry& e : raw) {
    tables.push_back(fbs::CreateTuningEntry(
        builder, builder.CreateString(e.target), static_cast<fbs::KernelKind>(e.kernel),
        e.channel_block, e.tile_pixels, e.tiles_per_task, e.chunk_kib,
        static_cast<fbs::LoopOrder>(e.loop_order), e.threads));
  }
  builder.FinishSizePrefixed(fbs::CreateTuningRecord(builder, builder.CreateVector(tables)),
                             kTuningRecordIdentifier);
  return std::vector<uint8_t>(builder.GetBufferPointer(),
                              builder.GetBufferPointer() + builder.GetSize());
}

std::vector<RawTuningEntry> ReadTuningRecord(const fbs::TuningRecord& record) {
  std::vector<RawTuningEntry> raw;
  if (record.entries() == nullptr) return raw;
  raw.reserve(record.entries()->size());  // verified: inside the buffer
  for (const fbs::TuningEntry* e : *record.entries()) {
    RawTuningEntry r;
    if (e->target() != nullptr) r.target = e->target()->str();
    r.kernel = static_cast<uint8_t>(e->kernel());
    r.channel_block = e->channel_block();
    r.tile_pixels = e->tile_pixels();
    r.tiles_per_task = e->tiles_per_task();
    r.chunk_kib = e->chunk_kib();
    r.loop_order = static_cast<uint8_t>(e->loop_order());
    r.threads = e->threads();
    raw.push_back(r);
  }
  return raw;
}

}  // namespace cocopie
