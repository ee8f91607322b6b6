//! Flex tensors as plain f32 buffers, for the fused CPU kernels (`gelu`, `causal_softmax`).

use burn::backend::flex::FlexTensor;
use burn::backend::ops::FloatTensorOps;
use burn::backend::Flex;
use burn::tensor::{DType, FloatDType, TensorData};

/// The tensor's values in row-major order, reusing its buffer when nothing else holds it.
pub fn into_vec(tensor: FlexTensor) -> Vec<f32> {
    let n = tensor.layout().num_elements();
    let tensor = if tensor.is_contiguous() && tensor.layout().start_offset() == 0 {
        tensor
    } else {
        tensor.to_contiguous()
    };
    let mut values = tensor
        .into_data()
        .try_into_vec::<f32>()
        .expect("an f32 tensor");
    values.truncate(n);
    values
}

/// Runs `read` on the tensor's values in row-major order, copying only if it is strided.
pub fn read<R>(tensor: &FlexTensor, read: impl FnOnce(&[f32]) -> R) -> R {
    match tensor.layout().contiguous_offsets() {
        Some((start, end)) => read(&tensor.storage::<f32>()[start..end]),
        None => read(&into_vec(tensor.clone())),
    }
}

/// A contiguous tensor of the given shape over `values`.
pub fn from_vec(values: Vec<f32>, dims: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, dims))
}

pub fn dims(tensor: &FlexTensor) -> Vec<usize> {
    tensor.layout().shape().to_vec()
}

/// The tensor in f32: itself when it already is, else converted.
pub fn to_f32(tensor: FlexTensor) -> FlexTensor {
    match tensor.dtype() {
        DType::F32 => tensor,
        _ => Flex::float_cast(tensor, FloatDType::F32),
    }
}

/// Runs an f32 kernel on a tensor of any float dtype, converting half precision there and back.
pub fn as_f32(tensor: FlexTensor, kernel: impl FnOnce(FlexTensor) -> FlexTensor) -> FlexTensor {
    match tensor.dtype() {
        DType::F32 => kernel(tensor),
        dtype => Flex::float_cast(kernel(to_f32(tensor)), FloatDType::from(dtype)),
    }
}
